"""The Qt desktop interface. Reaches the engine only through io, Translator, export and bundles."""
