"""Self-supervised pretraining methods; importing this package registers them."""

from segssl.methods.ssl import densecl, pass_align, pixpro  # noqa: F401
