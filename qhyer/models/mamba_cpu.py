"""Fused C kernels for the Mamba branch on the CPU, compiled on first use with the system's C compiler: the
selective scan (with Mamba's output gate), the causal depthwise conv with SiLU, and the masked softplus of the step
sizes. float32 only. Each equals the PyTorch code it replaces (tests/test_mamba_cpu.py); Mamba-1's math is unchanged.

Selective scan (`FusedCpuScan`): the meaning of `qhyer.models.scan.selective_scan` (x, delta (b, L, d_inner);
A (d_inner, N); B, C (b, L, N); D (d_inner) → y (b, L, d_inner)). The pure-PyTorch scan (`scan.SelectiveScan`) makes
~35 passes over a (b, L, N, d_inner) state tensor per layer and is memory-bound; here each (batch row, block of
CHANNELS channels) walks time once with its (N, CHANNELS) state in registers/L1, like the Triton kernel
(`scan_triton.py`) on the GPU. Backward recomputes the states of one (batch row, channel block) into a small buffer
(L · N · CHANNELS floats) and runs the adjoint recurrence backwards in time over it (the equations of
`scan.SelectiveScan`):
    g_t = C_t ⊗ ∂y_t + Ā_{t+1} ⊙ g_{t+1},   ∂L/∂(Δ_t A) = g_t ⊙ Ā_t ⊙ h_{t−1},   ∂L/∂(Δ_t x_t B_t) = g_t,
so nothing of size b · L · d_inner · N is kept between forward and backward.

Conv + SiLU (`FusedCausalConvSiLU`): `F.silu(conv1d(x.mT)[..., :L].mT)` in one pass over the (b, L, d_inner) layout
that in_proj produces (mkldnn's depthwise conv backward and the transposed SiLU cost ~5x more). Softplus + mask
(`FusedSoftplusMask`): Δ = F.softplus(raw) · mask in one pass (torch's softplus costs ~4 ns an element here).

Only plain C with GCC/Clang vector extensions (no torch headers): `cc -O3 -march=native` builds it in about a second;
the shared library is cached under $XDG_CACHE_HOME/qhyer (or ~/.cache/qhyer; if unwritable, the temporary directory),
keyed by the source, the flags and the host. Any failure (no compiler, unwritable cache, load error) makes `library()`
return None and the callers keep their PyTorch code. exp is a Cephes-style polynomial (relative error ~1e-7, as
torch's vectorised exp) and sums run in another order than torch's, so results equal the PyTorch paths within float32
rounding, not bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import itertools
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

# Channels per block: one 8-lane float32 vector (AVX2) per state row (16, two vectors, compiled 7x slower).
CHANNELS = 8

_SOURCE = r"""
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHANNELS @CHANNELS@
#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* GCC/Clang vector extensions: one vector of CHANNELS channels; compilers map it to AVX2 (or split it on
   narrower SIMD). Written out because the auto-vectoriser gives up on the exp below. */
typedef float vf __attribute__((vector_size(4 * CHANNELS)));
typedef int32_t vi __attribute__((vector_size(4 * CHANNELS)));

/* Cephes expf: e^x = 2^n · e^r, |r| ≤ ln2/2, degree-6 polynomial, 2^n from the exponent bits; x clamped to
   [-88, 88] (below -87.3 the result is 0 or the smallest normal: the true value is subnormal). */
ALWAYS_INLINE vf exp_vf(vf x) {
    const vf bound = (vf){0} + 88.0f;
    vi low = x < -bound, high = x > bound;
    x = (vf)(((vi)x & ~(low | high)) | ((vi)-bound & low) | ((vi)bound & high));
    vf n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;    /* round to nearest: 1.5 · 2^23 */
    vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (vf)((__builtin_convertvector(n, vi) + 127) << 23);
}

ALWAYS_INLINE vf sigmoid_vf(vf v) { return 1.0f / (1.0f + exp_vf(-v)); }

ALWAYS_INLINE float sum_vf(vf v) {
    float total = 0.0f;
    for (int c = 0; c < CHANNELS; c++) total += v[c];
    return total;
}

/* Channels [c0, c0 + cb) of a row as one vector, the missing lanes 0 (so they add nothing to sums over channels). */
ALWAYS_INLINE vf load(const float *row, int cb) {
    vf v = {0};
    memcpy(&v, row, sizeof(float) * cb);
    return v;
}

ALWAYS_INLINE void store(float *row, vf v, int cb) { memcpy(row, &v, sizeof(float) * cb); }

/* One batch row, channels [c0, c0 + cb): h_t into states[t · step_stride] (N vectors) and Ā_t into
   decays[t · step_stride]; step_stride 0 keeps only the last step (forward without backward). When `y` is given,
   y_t into it, or with the gate z (rows z_stride apart) y_t into y_pre and y_t ⊙ SiLU(z_t) into y. */
ALWAYS_INLINE void walk_forward(const float *x, const float *delta, const vf *A_t, const float *B, const float *C,
                                const float *D, const float *z, int64_t z_stride, float *y_pre, float *y,
                                vf *states, vf *decays, int64_t step_stride, int64_t length, int64_t d, int64_t N,
                                int64_t c0, int cb) {
    const vf Dv = load(D + c0, cb);
    for (int64_t n = 0; n < N; n++) states[n] = (vf){0};
    for (int64_t t = 0; t < length; t++) {
        const vf xt = load(x + t * d + c0, cb), dt = load(delta + t * d + c0, cb), u = dt * xt;
        const vf *h_prev = states + (t > 0 ? t - 1 : 0) * step_stride;
        vf *h = states + t * step_stride, *decay = decays + t * step_stride, acc = Dv * xt;
        for (int64_t n = 0; n < N; n++) {
            decay[n] = exp_vf(dt * A_t[n]);
            h[n] = decay[n] * h_prev[n] + u * B[t * N + n];
            acc += C[t * N + n] * h[n];
        }
        if (y && z) {
            const vf zt = load(z + t * z_stride + c0, cb);
            store(y_pre + t * d + c0, acc, cb);
            store(y + t * d + c0, acc * zt * sigmoid_vf(zt), cb);
        } else if (y) {
            store(y + t * d + c0, acc, cb);
        }
    }
}

/* With the gate z, grad_y is ∂L/∂(y ⊙ SiLU(z)): ∂L/∂z goes to grad_z (from y_pre) and ∂L/∂y = grad_y ⊙ SiLU(z). */
ALWAYS_INLINE void walk_backward(const float *x, const float *delta, const vf *A_t, const float *B, const float *C,
                                 const float *D, const float *z, int64_t z_stride, const float *y_pre,
                                 const float *grad_y, float *grad_x, float *grad_delta, vf *grad_A_t,
                                 vf *grad_B_lanes, vf *grad_C_lanes, float *grad_D, float *grad_z, const vf *states,
                                 const vf *decays, vf *g, int64_t length, int64_t d, int64_t N, int64_t c0, int cb) {
    const vf Dv = load(D + c0, cb);
    vf grad_Dv = {0};
    for (int64_t n = 0; n < N; n++) g[n] = (vf){0};                         /* Ā_{t+1} ⊙ g_{t+1}: 0 after the end */
    for (int64_t t = length - 1; t >= 0; t--) {
        const vf xt = load(x + t * d + c0, cb), dt = load(delta + t * d + c0, cb);
        const vf u = dt * xt, *h = states + t * N, *decay = decays + t * N;
        vf gy = load(grad_y + t * d + c0, cb);
        if (z) {
            const vf zt = load(z + t * z_stride + c0, cb), s = sigmoid_vf(zt);
            store(grad_z + t * d + c0, gy * load(y_pre + t * d + c0, cb) * s * (1.0f + zt * (1.0f - s)), cb);
            gy *= zt * s;
        }
        vf grad_u = {0}, grad_dt = {0};
        for (int64_t n = 0; n < N; n++) {
            const vf h_prev = t > 0 ? states[(t - 1) * N + n] : (vf){0};
            const vf g_t = g[n] + C[t * N + n] * gy;                               /* ∂L/∂h_t */
            const vf grad_dA = g_t * decay[n] * h_prev;                            /* ∂L/∂(Δ_t A) */
            grad_C_lanes[t * N + n] += gy * h[n];                              /* summed over lanes by the caller */
            grad_B_lanes[t * N + n] += g_t * u;
            grad_u += g_t * B[t * N + n];
            grad_dt += grad_dA * A_t[n];
            grad_A_t[n] += grad_dA * dt;
            g[n] = decay[n] * g_t;
        }
        store(grad_x + t * d + c0, grad_u * dt + Dv * gy, cb);
        store(grad_delta + t * d + c0, grad_u * xt + grad_dt, cb);
        grad_Dv += gy * xt;
    }
    store(grad_D + c0, load(grad_D + c0, cb) + grad_Dv, cb);
}

/* Inputs float32: x, delta, y, y_pre (b, L, d) contiguous; B, C (b, L, N) contiguous; D (d); A_blocks
   (⌈d / CHANNELS⌉, N, CHANNELS): Aᵀ by channel block, zero-padded, aligned to the vector size (PyTorch's allocations
   are 64-byte aligned); the gate z (b, L, d) with channels contiguous and rows z_stride apart, or NULL (no gate, and
   y_pre, grad_z unused). The recomputation in backward passes y = NULL, so it never writes y_pre (whence the cast).
   Whole blocks of CHANNELS channels get a constant width (plain vector loads), the last partial block its own.
   Return 1 when out of memory. */
#define ROW_INPUTS x + row, delta + row, (const vf *)A_blocks + block * N, B + row_N, C + row_N, D, \
                   z ? z + i * length * z_stride : 0, z_stride, (float *)(y_pre ? y_pre + row : 0)
#define FOR_CHANNEL_BLOCKS(call)                                                                  \
    for (int64_t block = 0, c0 = 0; c0 < d; block++, c0 += CHANNELS) {                           \
        if (c0 + CHANNELS <= d) { call(CHANNELS); } else { call((int)(d - c0)); }                 \
    }

int scan_forward(const float *x, const float *delta, const float *A_blocks, const float *B, const float *C,
                 const float *D, const float *z, int64_t z_stride, float *y_pre, float *y, int64_t batch,
                 int64_t length, int64_t d, int64_t N) {
    vf *last = aligned_alloc(sizeof(vf), sizeof(vf) * 2 * N);
    if (!last) return 1;
    for (int64_t i = 0; i < batch; i++) {
        const int64_t row = i * length * d, row_N = i * length * N;
#define FORWARD(cb) walk_forward(ROW_INPUTS, y + row, last, last + N, 0, length, d, N, c0, cb)
        FOR_CHANNEL_BLOCKS(FORWARD)
    }
    free(last);
    return 0;
}

/* grad_A_blocks (laid out as A_blocks) and grad_D are accumulated into (zero them first); grad_x, grad_delta,
   grad_B and grad_C are written. ∂B_t, ∂C_t (sums over channels) gather per lane over a row's channel blocks and
   are summed over lanes once per row. */
int scan_backward(const float *x, const float *delta, const float *A_blocks, const float *B, const float *C,
                  const float *D, const float *z, int64_t z_stride, const float *y_pre, const float *grad_y,
                  float *grad_x, float *grad_delta, float *grad_A_blocks, float *grad_B, float *grad_C, float *grad_D,
                  float *grad_z, int64_t batch, int64_t length, int64_t d, int64_t N) {
    const size_t steps_size = sizeof(vf) * (length + 1) * N;     /* + 1: walk_forward zeroes N vectors even at L = 0 */
    vf *states = aligned_alloc(sizeof(vf), steps_size), *decays = aligned_alloc(sizeof(vf), steps_size);
    vf *g = aligned_alloc(sizeof(vf), sizeof(vf) * N);
    vf *grad_B_lanes = aligned_alloc(sizeof(vf), steps_size), *grad_C_lanes = aligned_alloc(sizeof(vf), steps_size);
    if (!states || !decays || !g || !grad_B_lanes || !grad_C_lanes) {
        free(states); free(decays); free(g); free(grad_B_lanes); free(grad_C_lanes);
        return 1;
    }
    for (int64_t i = 0; i < batch; i++) {
        const int64_t row = i * length * d, row_N = i * length * N;
        memset(grad_B_lanes, 0, sizeof(vf) * length * N);
        memset(grad_C_lanes, 0, sizeof(vf) * length * N);
#define RECOMPUTE_AND_BACKWARD(cb)                                                                               \
        walk_forward(ROW_INPUTS, 0, states, decays, N, length, d, N, c0, cb);                                    \
        walk_backward(ROW_INPUTS, grad_y + row, grad_x + row, grad_delta + row, (vf *)grad_A_blocks + block * N, \
                      grad_B_lanes, grad_C_lanes, grad_D, z ? grad_z + row : 0, states, decays, g, length, d, N, \
                      c0, cb)
        FOR_CHANNEL_BLOCKS(RECOMPUTE_AND_BACKWARD)
        for (int64_t k = 0; k < length * N; k++) {
            grad_B[row_N + k] = sum_vf(grad_B_lanes[k]);
            grad_C[row_N + k] = sum_vf(grad_C_lanes[k]);
        }
    }
    free(states); free(decays); free(g); free(grad_B_lanes); free(grad_C_lanes);
    return 0;
}

/* Mamba's causal depthwise conv with SiLU: pre_t = bias + Σ_j w_j ⊙ x_{t−k+1+j} (x_{<0} = 0), out_t = SiLU(pre_t).
   x rows (b, L) are x_stride floats apart (x may be the first half of in_proj's output); w_t = wᵀ (k, d); out,
   grad_out, grad_x contiguous (b, L, d). */
ALWAYS_INLINE vf conv_pre(const float *x, int64_t x_stride, const float *w_t, vf bias, int64_t t, int64_t d,
                          int64_t k, int64_t c0, int cb) {
    vf pre = bias;
    for (int64_t j = 0; j < k; j++)
        if (t - k + 1 + j >= 0) pre += load(w_t + j * d + c0, cb) * load(x + (t - k + 1 + j) * x_stride + c0, cb);
    return pre;
}

void conv_silu_forward(const float *x, int64_t x_stride, const float *w_t, const float *bias, float *out,
                       int64_t batch, int64_t length, int64_t d, int64_t k) {
    for (int64_t i = 0; i < batch; i++) {
        const float *xi = x + i * length * x_stride;
        float *out_i = out + i * length * d;
#define CONV_FORWARD(cb)                                                                                    \
        for (int64_t t = 0; t < length; t++) {                                                              \
            vf pre = conv_pre(xi, x_stride, w_t, load(bias + c0, cb), t, d, k, c0, cb);                     \
            store(out_i + t * d + c0, pre * sigmoid_vf(pre), cb);                                           \
        }
        FOR_CHANNEL_BLOCKS(CONV_FORWARD)
    }
}

/* pre_t is recomputed from x; grad_x is written, grad_w_t (k, d) and grad_bias (d) are accumulated into. */
void conv_silu_backward(const float *x, int64_t x_stride, const float *w_t, const float *bias, const float *grad_out,
                        float *grad_x, float *grad_w_t, float *grad_bias, int64_t batch, int64_t length, int64_t d,
                        int64_t k) {
    memset(grad_x, 0, sizeof(float) * batch * length * d);
    for (int64_t i = 0; i < batch; i++) {
        const float *xi = x + i * length * x_stride, *grad_out_i = grad_out + i * length * d;
        float *grad_x_i = grad_x + i * length * d;
#define CONV_BACKWARD(cb)                                                                                   \
        for (int64_t t = 0; t < length; t++) {                                                              \
            vf pre = conv_pre(xi, x_stride, w_t, load(bias + c0, cb), t, d, k, c0, cb), s = sigmoid_vf(pre); \
            vf grad_pre = load(grad_out_i + t * d + c0, cb) * s * (1.0f + pre * (1.0f - s));                \
            store(grad_bias + c0, load(grad_bias + c0, cb) + grad_pre, cb);                                 \
            for (int64_t j = 0; j < k; j++) {                                                               \
                int64_t src = t - k + 1 + j;                                                                \
                if (src < 0) continue;                                                                      \
                float *gx = grad_x_i + src * d + c0, *gw = grad_w_t + j * d + c0;                           \
                store(gx, load(gx, cb) + load(w_t + j * d + c0, cb) * grad_pre, cb);                        \
                store(gw, load(gw, cb) + load(xi + src * x_stride + c0, cb) * grad_pre, cb);                \
            }                                                                                               \
        }
        FOR_CHANNEL_BLOCKS(CONV_BACKWARD)
    }
}

/* Δ = softplus(raw) ⊙ mask as torch's F.softplus (threshold 20: raw above it is returned as is), written as
   max(raw, 0) + log1p(e^−|raw|) so nothing overflows; log1p(y) = 2 atanh(y / (2 + y)), an odd series in
   s = y / (2 + y) ≤ 1/3 cut after s^15 (relative error < 2e-8). raw, delta, grad_* (rows, d) contiguous; mask one
   byte per row (0 = padding: Δ = 0 and no gradient), or NULL. */
ALWAYS_INLINE vf select_vf(vi where, vf a, vf b) { return (vf)(((vi)a & where) | ((vi)b & ~where)); }

ALWAYS_INLINE vf softplus_vf(vf raw) {
    const vf zero = {0};
    vf y = exp_vf(select_vf(raw > zero, -raw, raw)), s = y / (2.0f + y), s2 = s * s;
    vf p = s2 * (1.0f / 15) + 1.0f / 13;
    p = p * s2 + 1.0f / 11;
    p = p * s2 + 1.0f / 9;
    p = p * s2 + 1.0f / 7;
    p = p * s2 + 1.0f / 5;
    p = p * s2 + 1.0f / 3;
    p = p * s2 + 1.0f;
    return select_vf(raw > 20.0f + zero, raw, select_vf(raw > zero, raw, zero) + 2.0f * s * p);
}

void softplus_mask_forward(const float *raw, const uint8_t *mask, float *delta, int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t row = r * d;
        const int keep = !mask || mask[r];
#define SOFTPLUS_FORWARD(cb) store(delta + row + c0, keep ? softplus_vf(load(raw + row + c0, cb)) : (vf){0}, cb)
        FOR_CHANNEL_BLOCKS(SOFTPLUS_FORWARD)
    }
}

/* ∂Δ/∂raw = σ(raw) ⊙ mask (1 above the threshold), as torch's softplus_backward. */
void softplus_mask_backward(const float *raw, const uint8_t *mask, const float *grad_delta, float *grad_raw,
                            int64_t rows, int64_t d) {
    for (int64_t r = 0; r < rows; r++) {
        const int64_t row = r * d;
        const int keep = !mask || mask[r];
#define SOFTPLUS_BACKWARD(cb)                                                                               \
        {                                                                                                   \
            const vf x = load(raw + row + c0, cb), slope = select_vf(x > 20.0f + (vf){0}, 1.0f + (vf){0},   \
                                                                     sigmoid_vf(x));                        \
            store(grad_raw + row + c0, keep ? load(grad_delta + row + c0, cb) * slope : (vf){0}, cb);       \
        }
        FOR_CHANNEL_BLOCKS(SOFTPLUS_BACKWARD)
    }
}
"""


def _compile(source: str, flags: list[str], target: Path) -> bool:
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        return False
    # Built beside its target (os.replace cannot cross filesystems: /tmp is often local, ~/.cache on NFS), then
    # renamed: concurrent processes never load a half-written library.
    built = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp, "mamba_cpu.c")
        c_file.write_text(source)
        try:
            result = subprocess.run([compiler, *flags, str(c_file), "-o", str(built)], capture_output=True,
                                    timeout=120, check=False)
            if result.returncode != 0:
                return False
            os.replace(built, target)
        except (OSError, subprocess.TimeoutExpired):
            return False
        finally:
            built.unlink(missing_ok=True)
    return True


@functools.cache
def library() -> ctypes.CDLL | None:
    """The compiled library (cached on disk), or None when it cannot be built or loaded, or when the environment
    sets QHYER_CPU_KERNELS=pytorch (to reproduce numbers made without a C compiler)."""
    if os.environ.get("QHYER_CPU_KERNELS", "fused") == "pytorch":
        return None
    source = _SOURCE.replace("@CHANNELS@", str(CHANNELS))
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qhyer"
    temp_cache = Path(tempfile.gettempdir()) / f"qhyer-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    # -march=native: the host's vector width; a library is only reused on the host that built it (key below). A
    # read-only home (some cluster nodes) falls back to the temporary directory.
    for cache, flags in itertools.product((home_cache, temp_cache), (["-O3", "-march=native", "-shared", "-fPIC"],
                                                                     ["-O3", "-shared", "-fPIC"])):
        key = hashlib.sha256("\0".join([source, *flags, platform.node(), platform.machine()]).encode()).hexdigest()
        path = cache / f"mamba_cpu_{key[:16]}.so"
        try:
            cache.mkdir(parents=True, exist_ok=True)
            if not path.exists() and not _compile(source, flags, path):
                continue
            lib = ctypes.CDLL(str(path))
        except OSError:
            continue
        pointer, size, sizes = ctypes.c_void_p, ctypes.c_int64, [ctypes.c_int64] * 4
        lib.scan_forward.argtypes = [*[pointer] * 7, size, pointer, pointer] + sizes
        lib.scan_backward.argtypes = [*[pointer] * 7, size, *[pointer] * 9] + sizes
        lib.scan_forward.restype = lib.scan_backward.restype = ctypes.c_int
        lib.conv_silu_forward.argtypes = [pointer, size, pointer, pointer, pointer] + sizes
        lib.conv_silu_backward.argtypes = [pointer, size, *[pointer] * 6] + sizes
        lib.conv_silu_forward.restype = lib.conv_silu_backward.restype = None
        lib.softplus_mask_forward.argtypes = [pointer] * 3 + [size] * 2
        lib.softplus_mask_backward.argtypes = [pointer] * 4 + [size] * 2
        lib.softplus_mask_forward.restype = lib.softplus_mask_backward.restype = None
        lib.build_flags = ",".join(flag for flag in flags if flag not in ("-shared", "-fPIC"))  # one word of a label
        return lib
    return None


def kernels_label() -> str:
    """Which CPU kernels the Mamba branch runs in this process, for run provenance (they change the numbers within
    float32 rounding): `fused-c(<compiler flags>)` or `pytorch`."""
    lib = library()
    return "pytorch" if lib is None else f"fused-c({lib.build_flags})"


@torch.compiler.disable  # under torch.compile the kernels are opaque calls between compiled graphs
def supports(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels take these inputs: CPU float32 tensors, and the library builds."""
    return (all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors)
            and library() is not None)


def _by_channel_block(A: torch.Tensor) -> torch.Tensor:
    """A (d, N) → (⌈d / CHANNELS⌉, N, CHANNELS): Aᵀ cut into the kernel's channel blocks, zero-padded."""
    d, N = A.shape
    padded = A.new_zeros(-(-d // CHANNELS) * CHANNELS, N)
    padded[:d] = A
    return padded.view(-1, CHANNELS, N).transpose(1, 2).contiguous()


class FusedCpuScan(torch.autograd.Function):
    """`selective_scan` on the CPU through the fused C kernel; call only when `supports(...)` holds. With the gate z
    (b, L, d_inner), the output is y ⊙ SiLU(z) (Mamba's `y * F.silu(z)`, as mamba-ssm's `selective_scan_fn(z=...)`),
    computed in the same pass; the ungated y is kept for ∂L/∂z."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, z=None):
        x, delta, B, C, D = (v.contiguous() for v in (x, delta, B, C, D))
        A_blocks = _by_channel_block(A)
        y = torch.empty_like(x)
        z = _rows_of_contiguous_channels(z) if z is not None else None
        y_pre = torch.empty_like(x) if z is not None else None
        if library().scan_forward(*_pointers(x, delta, A_blocks, B, C, D, z), _row_stride(z), *_pointers(y_pre, y),
                                  *x.shape, A.shape[1]):
            raise MemoryError("selective scan forward: no memory for its state buffer")
        ctx.save_for_backward(x, delta, A_blocks, B, C, D, z, y_pre)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, delta, A_blocks, B, C, D, z, y_pre = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x, grad_delta, grad_B, grad_C = (torch.empty_like(v) for v in (x, delta, B, C))
        grad_A_blocks, grad_D = torch.zeros_like(A_blocks), torch.zeros_like(D)
        grad_z = torch.empty_like(x) if z is not None else None
        if library().scan_backward(*_pointers(x, delta, A_blocks, B, C, D, z), _row_stride(z),
                                   *_pointers(y_pre, grad_y, grad_x, grad_delta, grad_A_blocks, grad_B, grad_C, grad_D,
                                              grad_z), *x.shape, A_blocks.shape[1]):
            raise MemoryError(f"selective scan backward: no memory for two (L {x.shape[1]}, N {A_blocks.shape[1]}, "
                              f"{CHANNELS}) float32 buffers")
        grad_A = grad_A_blocks.transpose(1, 2).reshape(-1, A_blocks.shape[1])[:x.shape[2]]
        return grad_x, grad_delta, grad_A, grad_B, grad_C, grad_D, grad_z


def _pointers(*tensors: torch.Tensor | None) -> list[int | None]:
    return [None if t is None else t.data_ptr() for t in tensors]


def _row_stride(x: torch.Tensor | None) -> int:
    return 0 if x is None else x.stride(1)


def _rows_of_contiguous_channels(x: torch.Tensor) -> torch.Tensor:
    """x (b, L, d) with channels contiguous and evenly spaced rows (e.g. a chunk of in_proj's output), else a copy."""
    b, length, _ = x.shape
    if x.stride(2) == 1 and (b == 1 or x.stride(0) == length * x.stride(1)):
        return x
    return x.contiguous()


class FusedCausalConvSiLU(torch.autograd.Function):
    """SiLU(causal depthwise conv(x)) along time, x (b, L, d) → (b, L, d), as Mamba's
    `F.silu(conv1d(x.mT)[..., :L].mT)` with conv1d weight (d, 1, k), bias (d). One pass, no transposes; backward
    recomputes the pre-activation."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        x = _rows_of_contiguous_channels(x)
        w_t, bias = weight[:, 0].t().contiguous(), bias.contiguous()                  # (k, d)
        out = x.new_empty(x.shape)
        library().conv_silu_forward(x.data_ptr(), x.stride(1), w_t.data_ptr(), bias.data_ptr(), out.data_ptr(),
                                           *x.shape, w_t.shape[0])
        ctx.save_for_backward(x, w_t, bias)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, w_t, bias = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_x, grad_w_t, grad_bias = x.new_empty(x.shape), torch.zeros_like(w_t), torch.zeros_like(bias)
        library().conv_silu_backward(x.data_ptr(), x.stride(1), w_t.data_ptr(), bias.data_ptr(),
                                            grad_out.data_ptr(), grad_x.data_ptr(), grad_w_t.data_ptr(),
                                            grad_bias.data_ptr(), *x.shape, w_t.shape[0])
        return grad_x, grad_w_t.t()[:, None], grad_bias


class FusedSoftplusMask(torch.autograd.Function):
    """Δ = F.softplus(raw) * mask[..., None] in one pass: raw (b, L, d_inner), mask (b, L) bool (False = padding)
    or None (all real)."""

    @staticmethod
    def forward(ctx, raw, mask=None):
        raw = raw.contiguous()
        mask = mask.contiguous() if mask is not None else None
        delta = torch.empty_like(raw)
        library().softplus_mask_forward(*_pointers(raw, mask, delta), raw[..., 0].numel(), raw.shape[-1])
        ctx.save_for_backward(raw, mask)
        return delta

    @staticmethod
    def backward(ctx, grad_delta):
        raw, mask = ctx.saved_tensors
        grad_raw = torch.empty_like(raw)
        library().softplus_mask_backward(*_pointers(raw, mask, grad_delta.contiguous(), grad_raw),
                                         raw[..., 0].numel(), raw.shape[-1])
        return grad_raw, None


# Entry points for the model; torch.compile leaves them out of its graphs (it cannot trace a ctypes call).
fused_scan = torch.compiler.disable(FusedCpuScan.apply)
fused_conv_silu = torch.compiler.disable(FusedCausalConvSiLU.apply)
fused_softplus_mask = torch.compiler.disable(FusedSoftplusMask.apply)
