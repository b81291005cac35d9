"""Self-supervised pretraining methods; importing this package registers them."""
