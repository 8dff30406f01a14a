"""Explain: Grad-CAM family (grad-cam library) for CNNs and ViTs, attention maps and rollout for ViTs."""
