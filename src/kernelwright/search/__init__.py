"""The offline writer: graph capture, Triton code generation, variant search and tuning."""
