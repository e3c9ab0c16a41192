"""Two memory figures, both counted from torch's own tensors.

kept for backward: the tensors autograd saves during one forward, as seen by
    torch.autograd.graph.saved_tensors_hooks, summed over distinct storages (a storage saved
    twice, or viewed by several saved tensors, counts once). Reported twice: everything saved,
    and only what is not an input or parameter (those stay alive anyway, backward or not).

peak of one step: the highest point that torch's CPU allocator reaches during one call, above
    where it stood when the call began, read from the allocation and free events that
    torch.profiler(profile_memory=True) records. It sees every tensor torch allocates on the CPU
    (the fused op's outputs and workspaces included, since they are torch tensors); it does not
    see memory outside torch's allocator (BLAS/oneDNN scratch, Python objects, compiled code).
    It is measured on a warm call: the optimizer's state already exists, while gradients
    (freed by zero_grad(set_to_none=True)) are allocated again, as in every real step.
"""
from typing import Callable, Dict, Iterable

import torch
from torch.profiler import ProfilerActivity, profile, record_function


_CPU = torch._C._autograd.DeviceType.CPU
_SPAN = "rnnfast-bench-step:"


def _storage_key(t: torch.Tensor):
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def saved_bytes(forward: Callable[[], object], keep_alive_anyway: Iterable[torch.Tensor]) -> dict:
    """Bytes that one grad-enabled call of `forward` leaves saved for its backward."""
    seen = {}

    def pack(t: torch.Tensor):
        key = _storage_key(t)
        seen[key] = key[1]
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward()
    del out
    excluded = {_storage_key(t) for t in keep_alive_anyway}
    return {"saved_bytes": sum(seen.values()),
            "saved_activation_bytes": sum(n for k, n in seen.items() if k not in excluded),
            "saved_storages": len(seen)}


def step_peak_bytes(calls: Dict[str, Callable[[], object]]) -> Dict[str, int]:
    """Peak bytes held by torch's CPU allocator during each call, above the level at its start.

    All calls run in one profiler session (starting one costs about a second); each runs inside
    a record_function span, whose start and end bound the allocation events that are its own.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for name, call in calls.items():
            with record_function(_SPAN + name):
                call()
    events = prof.profiler.kineto_results.events()
    spans = {e.name()[len(_SPAN):]: (e.start_ns(), e.end_ns()) for e in events
             if e.name().startswith(_SPAN)}
    allocs = sorted(((e.start_ns(), e.nbytes()) for e in events
                     if e.name() == "[memory]" and e.device_type() == _CPU))
    peaks = {}
    for name, (start, end) in spans.items():
        level = peak = 0
        for t, n in allocs:
            if start <= t <= end:
                level += n
                peak = max(peak, level)
        peaks[name] = peak
    return peaks
