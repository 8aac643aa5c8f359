"""`twofold measure`: PyTorch microbenchmarks and training steps on the local device, the fit of its
calibration profile, and the results database.

Modules: `kernels` (what is timed and its operator view), `bench` (the device seam and the PyTorch
device), `fake` (a cost-model device for tests), `torch_model` (the Llama-style model), `fit`,
`db`, `run` (the whole command as a function). torch is imported inside functions only.
"""
