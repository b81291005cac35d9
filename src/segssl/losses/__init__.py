"""Loss functions: pure functions of tensors, one module per method family."""
