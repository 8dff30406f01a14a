"""Models: creation by name, pretrained weights (hub or local/foreign files), transfer strategies."""
