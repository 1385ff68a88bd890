"""The Triton kernel of :mod:`kwta.nn.native.triton_kwta` (the algorithm is described there).

Loaded by ``triton_kwta._build`` with ``importlib``, once per mode (compiled for the GPU, or
run by Triton's interpreter under ``TRITON_INTERPRET=1``), never imported directly.
"""

# mypy: ignore-errors
# ruff: noqa: SIM108  (plain if/else on constexprs: what Triton compiles)

import triton
import triton.language as tl


@triton.jit
def _key(x_ptr, offs, valid, KEY_BITS: tl.constexpr):
    v = tl.load(x_ptr + offs, mask=valid, other=0.0)
    if KEY_BITS == 16:  # bf16, fp16: the value's own 16 bits
        v = tl.where(v == 0.0, tl.zeros_like(v), v)  # -0.0 -> +0.0
        u = v.to(tl.uint16, bitcast=True).to(tl.uint32)
        top = tl.full(u.shape, 0x8000, tl.uint32)
        ones = tl.full(u.shape, 0xFFFF, tl.uint32)
    else:  # fp32
        v = v.to(tl.float32)
        v = tl.where(v == 0.0, 0.0, v)  # -0.0 -> +0.0
        u = v.to(tl.uint32, bitcast=True)
        top = tl.full(u.shape, 0x80000000, tl.uint32)
        ones = tl.full(u.shape, 0xFFFFFFFF, tl.uint32)
    return tl.where((u & top) != 0, u ^ ones, u | top)


@triton.jit
def kwta_kernel(
    x_ptr,
    y_ptr,
    m_ptr,
    n,
    k,
    channels,
    hw,
    CHANNELS_LAST: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BITS: tl.constexpr,
    BINS: tl.constexpr,
    PASSES: tl.constexpr,
    KEY_BITS: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = row * n
    lanes = tl.arange(0, BLOCK_N)
    bins = tl.arange(0, BINS)
    prefix = tl.zeros((), dtype=tl.uint32)  # the digits of T found so far
    want = k  # rank of T among the keys sharing the prefix, counted from the top
    ties = tl.zeros((), dtype=tl.int32)
    for p in tl.static_range(PASSES):
        shift: tl.constexpr = KEY_BITS - BITS * (p + 1)
        hist = tl.zeros((BINS,), dtype=tl.int32)
        for start in range(0, n, BLOCK_N):
            offs = start + lanes
            valid = offs < n
            key = _key(x_ptr + base, offs, valid, KEY_BITS)
            digit = ((key >> shift) & (BINS - 1)).to(tl.int32)
            if p == 0:
                match = valid
            else:
                match = valid & ((key >> (shift + BITS)) == prefix)
            # excluded lanes are counted in bin 0 and taken out again (portable: no mask arg)
            hist += tl.histogram(tl.where(match, digit, 0), BINS)
            hist -= tl.where(bins == 0, tl.sum((~match).to(tl.int32), axis=0), 0)
        # from the top: the digit d with  #(digit > d) < want <= #(digit >= d)
        at_or_above = tl.sum(hist, axis=0) - tl.cumsum(hist, axis=0) + hist
        d = tl.max(tl.where(at_or_above >= want, bins, -1), axis=0)
        in_d = tl.sum(tl.where(bins == d, hist, 0), axis=0)
        want -= tl.sum(tl.where(bins == d, at_or_above, 0), axis=0) - in_d
        prefix = (prefix << BITS) | d.to(tl.uint32)
        ties = in_d
    # `want` ties with T win; all of them when no more tie than may win
    keep_ties = ties == want
    for start in range(0, n, BLOCK_N):
        offs = start + lanes
        valid = offs < n
        v = tl.load(x_ptr + base + offs, mask=valid, other=0.0)
        key = _key(x_ptr + base, offs, valid, KEY_BITS)
        win = (key > prefix) | ((key == prefix) & keep_ties)
        tl.store(y_ptr + base + offs, tl.where(win, v, tl.zeros_like(v)), mask=valid)
        tl.store(m_ptr + base + offs, win.to(tl.int1), mask=valid)
    if not keep_ties:  # surplus ties: the first `want` in flat C·H·W order win
        kept = tl.zeros((), dtype=tl.int32)
        for start in range(0, n, BLOCK_N):
            flat = start + lanes
            valid = flat < n
            if CHANNELS_LAST:
                mem = (flat % hw) * channels + flat // hw
            else:
                mem = flat
            key = _key(x_ptr + base, mem, valid, KEY_BITS)
            tied = valid & (key == prefix)
            rank = kept + tl.cumsum(tied.to(tl.int32), axis=0)
            win = tied & (rank <= want)
            v = tl.load(x_ptr + base + mem, mask=win, other=0.0)
            tl.store(y_ptr + base + mem, v, mask=win)
            tl.store(m_ptr + base + mem, win.to(tl.int1), mask=win)
            kept += tl.sum(tied.to(tl.int32), axis=0)
