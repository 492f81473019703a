"""The bundled task suite: one KernelBench-format file per operator, discovered by file name."""
