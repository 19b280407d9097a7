def load_scrfd_onnx(path): raise NotImplementedError
