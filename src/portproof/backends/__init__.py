"""Ways of running a model: eager torch on a device, torch.compile, ONNX Runtime (see base.Backend)."""
