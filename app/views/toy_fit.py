"""1-D toy fit: a k-WTA and a ReLU MLP fitted to a few points (Fig. 1)."""

from __future__ import annotations

import cached
import figures
import streamlit as st
import ui

from kwta.explorer import estimates, jobs
from kwta.explorer.limits import MAX_FIT_STEPS
from kwta.explorer.runs import records_to_csv
from kwta.nn.functional import k_from_ratio

P = "toy"
WIDTHS = [8, 16, 32, 64, 128, 256, 512]


st.title("1-D toy fit (Fig. 1)")
st.markdown(
    "Two MLPs of the same size start from the same weights and are fitted to the same few "
    "points of `sin(πx)`: one with **k-WTA**, one with **ReLU**. Both fits are piecewise linear. "
    "The ReLU fit's pieces join up — it is continuous. The k-WTA fit's pieces do not: wherever "
    "two units swap places around the k-th largest value, one is switched off and another "
    "switched on at full value, and the output **jumps** (red dotted segments)."
)

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Toy fit")
ui.init_state(f"{P}_n", 8, lo=1, hi=64)
ui.init_state(f"{P}_width", 64, choices=WIDTHS)
ui.init_state(f"{P}_depth", 2, lo=1, hi=4)
ui.init_state(f"{P}_gamma", 0.1, lo=0.01, hi=1.0)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**6)
ui.init_state(f"{P}_steps", 2000, lo=0, hi=1_000_000)
sb.slider("Training points", 1, 64, key=f"{P}_n")
sb.select_slider("Hidden width", WIDTHS, key=f"{P}_width")
sb.slider("Hidden layers", 1, 4, key=f"{P}_depth")
sb.slider("Sparsity ratio γ (k-WTA)", 0.01, 1.0, step=0.01, key=f"{P}_gamma")
sb.number_input("Seed (points and initialisation)", 0, 10**6, key=f"{P}_seed")
sb.number_input(f"Adam steps (≤ {MAX_FIT_STEPS})", 0, 1_000_000, step=500, key=f"{P}_steps")
ui.show_notices()

n_points = int(st.session_state[f"{P}_n"])
width = int(st.session_state[f"{P}_width"])
depth = int(st.session_state[f"{P}_depth"])
gamma = float(st.session_state[f"{P}_gamma"])
seed = int(st.session_state[f"{P}_seed"])
steps = ui.capped(int(st.session_state[f"{P}_steps"]), MAX_FIT_STEPS, "Adam steps")
params = {"n": n_points, "w": width, "d": depth, "g": gamma, "s": seed, "steps": steps}
settings = {"n_points": n_points, "width": width, "depth": depth, "ratio": gamma, "seed": seed,
            "steps": steps}  # fmt: skip
step_s, fixed_s = estimates.toy_step_seconds(
    n_points=n_points, width=width, depth=depth, ratio=gamma
)
expected = estimates.toy_estimate(step_s, fixed_s, steps)
ui.expected_time(expected)
clicked = st.button(
    "Fit both networks", type="primary", key=f"{P}_run", icon=":material/play_arrow:"
)
show = ui.remember_run(
    f"{P}_ran", params, clicked, light=steps <= 2000 and width <= 64 and depth <= 2
)

if show:
    try:
        fit = ui.run_with_progress(
            lambda sink: cached.run_fit(settings, _progress=sink),
            label=f"Fitting two {depth}×{width} MLPs for {steps} Adam steps…",
        )
    except (ValueError, jobs.JobError) as err:
        st.error(f"Cannot fit: {err}")
        st.stop()
    ui.chart(figures.toy_fit_figure(fit), key=f"{P}_chart")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("k-WTA jumps", len(fit.kwta_jumps))
    c2.metric("ReLU jumps", len(fit.relu_jumps))
    c3.metric("k-WTA train MSE", f"{fit.kwta_loss:.2e}")
    c4.metric("ReLU train MSE", f"{fit.relu_loss:.2e}")
    k = k_from_ratio(gamma, width)
    st.markdown(
        f"""
**Why the k-WTA curve is discontinuous.** Each hidden layer keeps its k = ⌊γ·{width}⌋ = {k}
largest pre-activations. As x moves, two of them can cross at the k-th place: the unit that
drops out still carries a value close to the k-th largest, so switching it off — and the new
winner on — changes the next layer's input by a finite amount. The function jumps, with no
linear piece in between (Sec. 3, "Discontinuity"). A ReLU unit, in contrast, switches off only
when its value passes through 0, so nothing jumps. A smaller γ gives larger jumps; a wider
layer gives more of them (Theorem 1). Jumps are located by bisection to ~1e-12 and counted
when larger than 0.1 % of the fit's range.
"""
    )
    st.session_state[f"{P}_result"] = {
        "kwta_jumps": len(fit.kwta_jumps),
        "relu_jumps": len(fit.relu_jumps),
        "n_dense": int(fit.x_dense.numel()),
    }
    rows = [
        {"x": x, "target": t, "kwta": a, "relu": b}
        for x, t, a, b in zip(
            fit.x_dense.tolist(),
            fit.target_dense.tolist(),
            fit.kwta_dense.tolist(),
            fit.relu_dense.tolist(),
            strict=True,
        )
    ]
    stem = f"toyfit-n{n_points}-w{width}-d{depth}-g{gamma:g}-s{seed}"
    d1, d2, d3 = st.columns(3)
    ui.download(d1, "Curves CSV", records_to_csv(rows), f"{stem}.csv", key=f"{P}_dl_csv")
    ui.result_downloads(
        (d2, d3),
        fit.to_dict(),
        ui.provenance("toy", settings),
        fit,
        None,
        stem,
        label="Fit JSON (points, curves, jumps)",
        key=f"{P}_dl",
    )
else:
    st.info("Set the sizes in the sidebar and press **Fit both networks**.")

ui.sync_url(run=1 if show else None)
