"""The speed switches (docs/speed.md): mixed precision, channels_last, torch.compile and the
optimizer's implementation. None of them changes the maths beyond rounding, so a run may
resume with any of them changed.

    precision = MixedPrecision("bf16", device)
    with precision.autocast():              # the forward passes of a phase
        loss = ...
        with double_backward():             # a penalty that differentiates a gradient (R1, GP,
            penalty = ...                   # path length): fp32, and uncompiled forwards
    precision.scale(loss).backward()
    precision.step(optimizer)               # fp16: GradScaler's unscale / skip-on-inf / update

Only torch; nothing here imports the rest of ganvas, so the objectives can use it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from typing import Any

import torch
from torch import nn

from ganvas.errors import ConfigError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
OPTIMIZER_IMPLEMENTATIONS = ("auto", "fused", "foreach", "off")

_eager = threading.local()  # .depth > 0: compiled forwards run eagerly (inside double_backward)


@contextmanager
def double_backward() -> Iterator[None]:
    """For a term that back-propagates through a gradient (R1/R2, WGAN-GP, path length):
    autocast is off, so the inner gradient is taken in fp32 (in bf16/fp16 it loses the small
    values the penalty is made of), and networks compiled by `compile_forward` run their
    plain forward (aot_autograd cannot differentiate twice). Inputs made under autocast must
    be cast to float32 by the caller."""
    _eager.depth = getattr(_eager, "depth", 0) + 1
    try:
        with ExitStack() as stack:
            for device_type in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
                stack.enter_context(torch.autocast(device_type, enabled=False))
            yield
    finally:
        _eager.depth -= 1


def compile_forward(module: nn.Module) -> nn.Module:
    """Route `module`'s forward through `torch.compile`, in place: its state_dict keys stay
    the plain ones (no `_orig_mod.`), and inside `double_backward` the plain forward runs."""
    plain = module.forward
    compiled = torch.compile(plain)

    def forward(*args: Any, **kwargs: Any) -> Any:
        if getattr(_eager, "depth", 0):
            return plain(*args, **kwargs)
        return compiled(*args, **kwargs)

    module.forward = forward
    return module


def check_compile_available() -> None:
    """Raise ConfigError when torch.compile cannot work here (its inductor backend needs a C
    compiler on the CPU and Triton on the GPU)."""
    import shutil

    if not any(shutil.which(cc) for cc in ("cc", "gcc", "clang")):
        raise ConfigError("train.compile=true needs a C compiler for torch.compile's inductor "
                          "backend (install gcc), or set train.compile=false")  # fmt: skip


class MixedPrecision:
    """Autocast for the forward passes and, for fp16, a GradScaler whose state is saved in
    the checkpoint (so a resumed fp16 run continues with the same loss scale)."""

    def __init__(self, precision: str, device: torch.device) -> None:
        self.precision, self.device = precision, device
        self.dtype = PRECISIONS[precision]
        if self.dtype is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.autocast(device.type, dtype=self.dtype)
            if any("not supported" in str(w.message) for w in caught):
                raise ConfigError(f"train.precision={precision}: this torch ({torch.__version__})"
                                  f" has no {precision} autocast on {device.type}; use "
                                  "train.precision=fp32 or bf16")  # fmt: skip
        self.scaler = None
        if precision == "fp16":  # bf16 has fp32's range: no loss scaling needed
            self.scaler = _working_grad_scaler(device)

    def autocast(self) -> Any:
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        return loss if self.scaler is None else self.scaler.scale(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """optimizer.step(); fp16: unscale the gradients first, skip the step if any is
        inf/NaN, and adjust the scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):  # a run saved in fp32/bf16: fresh
            self.scaler.load_state_dict(state["scaler"])


def _working_grad_scaler(device: torch.device) -> Any:
    """A GradScaler for `device`, tried once on a throwaway parameter (a torch whose scaler
    lacks the device's unscale kernels fails here, not in the first step)."""
    try:
        probe = torch.amp.GradScaler(device.type)
        weight = torch.ones(1, device=device, requires_grad=True)
        optimizer = torch.optim.SGD([weight], lr=0.0)
        probe.scale(weight.sum()).backward()
        probe.step(optimizer)
        probe.update()
    except (RuntimeError, NotImplementedError, AttributeError, TypeError) as err:
        raise ConfigError(f"train.precision=fp16 needs a loss scaler on {device.type}, which "
                          f"this torch ({torch.__version__}) lacks ({err}); use "
                          "train.precision=bf16") from err  # fmt: skip
    return torch.amp.GradScaler(device.type)


def optimizer_implementation(name: str, choice: str, device: torch.device) -> dict[str, bool]:
    """The `fused` / `foreach` keyword arguments for `optim.fused=choice`.

    - 'fused': one kernel for the whole update, where this torch has it for the optimizer on
      this device (Adam/AdamW: CUDA; CPU from torch 2.4); elsewhere 'foreach' (RMSprop has
      no fused kernel).
    - 'foreach': the update batched over the parameters (multi-tensor kernels).
    - 'off': one parameter at a time (PyTorch's reference loop).
    - 'auto': 'fused' on CUDA where available, else PyTorch's own default (the reference
      loop on the CPU: what ganvas did before the switch existed, so old runs resume the same).
    """
    if choice == "auto":
        if device.type != "cuda":
            return {}
        choice = "fused"
    if choice == "fused" and fused_supported(name, device):
        return {"fused": True}
    if choice == "off":
        return {"foreach": False}
    return {"foreach": True}


def fused_supported(name: str, device: torch.device) -> bool:
    """Whether this torch builds a fused `name` optimizer for parameters on `device`."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(name)
    if cls is None:
        return False
    try:
        cls([torch.zeros(1, device=device, requires_grad=True)], fused=True)
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


def to_memory_format(module: nn.Module, channels_last: bool) -> nn.Module:
    """channels_last: 4-D weights (convolutions) in NHWC order, the layout fast conv kernels
    (cuDNN with tensor cores, oneDNN) prefer."""
    return module.to(memory_format=torch.channels_last) if channels_last else module
