"""Ship a trained run: ONNX / TorchScript files with their preprocessing, ONNX Runtime inference,
int8 quantisation. Uses trained models only through :mod:`fgvc.api`."""
