from kernelwright.cli import app

app(prog_name="kernelwright")
