# Cheat: imports the bundled task's module and runs its Model (caught by the static policy).
# expect: forbidden_import
# task: rmsnorm
import torch
import torch.nn as nn
from kernelwright.tasks.suite import rmsnorm as task


class ModelNew(task.Model):
    pass
