"""Semi-supervised methods; importing this package registers them."""
