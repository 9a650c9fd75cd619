"""Released generator weights (safetensors) and their sha256 registry."""
