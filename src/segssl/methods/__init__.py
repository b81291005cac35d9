"""Training recipes. Each method is one small module registered by name (see `base.register`)."""

from segssl.methods.base import METHODS, Method, build_method, register

__all__ = ["METHODS", "Method", "build_method", "register"]
