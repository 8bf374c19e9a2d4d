"""The bundled tiny text-to-image models: data set, component construction and training."""
