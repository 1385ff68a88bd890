"""Overview: what k-WTA is, and the paper's Fig. 2 as a live toy."""

from __future__ import annotations

import figures
import streamlit as st
import ui

from kwta.explorer.demo import activation_demo, parse_vector, random_vector
from kwta.zoo.summary import fig2_models, paper_reference, summarize_card

P = "ov"
ACT_LABELS = {"relu": "ReLU", "lwta": "LWTA", "kwta": "k-WTA"}
KEYS = [f"{P}_n", f"{P}_seed", f"{P}_gamma", f"{P}_group", f"{P}_custom", f"{P}_vec"]

st.title("k-Winners-Take-All, explored")
st.markdown(
    """
**k-WTA** (Xiao, Zhong & Zheng, *Enhancing Adversarial Defense by k-Winners-Take-All*,
ICLR 2020) replaces every ReLU of a network by one rule: *keep the k = ⌊γ·N⌋ largest
activations of the whole layer and set all others to zero*.
Because which units win can flip under an arbitrarily small change of the input, the
network is **discontinuous** almost everywhere, so the input gradients that attacks such as
PGD follow become nearly useless — while training, which sums over many inputs, still works.
The pages on the left reproduce the paper's figures live on real CIFAR-10 images and
networks, and show what this robustness is made of.
"""
)

# ------------------------------------------------------------------ sidebar inputs
sb = st.sidebar
sb.header("Fig. 2 toy")
ui.init_state(f"{P}_n", 12, lo=2, hi=32)
ui.init_state(f"{P}_seed", 0, lo=0, hi=10**6)
ui.init_state(f"{P}_gamma", 0.25, lo=0.01, hi=1.0)
ui.init_state(f"{P}_group", 2, lo=1, hi=8)
ui.init_state(f"{P}_custom", False)
sb.slider("Sparsity ratio γ", 0.01, 1.0, step=0.01, key=f"{P}_gamma")
sb.slider("Group size (max-pool, LWTA)", 1, 8, key=f"{P}_group")
sb.toggle("Type my own vector", key=f"{P}_custom")

vector: list[float]
if st.session_state[f"{P}_custom"]:
    ui.init_state(f"{P}_vec", ", ".join(f"{v:g}" for v in random_vector(12, 0)))
    sb.text_area("Activation values (comma or space separated)", key=f"{P}_vec", height=90)
    try:
        vector = parse_vector(st.session_state[f"{P}_vec"])
    except ValueError as err:
        st.error(
            f"Cannot read the vector: {ui.literal(err, 120)}. Showing a random vector instead."
        )
        vector = random_vector(12, 0)
else:
    sb.slider("Vector length N", 2, 32, key=f"{P}_n")
    sb.number_input("Random seed", 0, 10**6, key=f"{P}_seed")
    vector = random_vector(int(st.session_state[f"{P}_n"]), int(st.session_state[f"{P}_seed"]))

ui.show_notices()
gamma = float(st.session_state[f"{P}_gamma"])
group = int(st.session_state[f"{P}_group"])

# ------------------------------------------------------------------ Fig. 2
st.subheader("One layer's activations through four activation functions (Fig. 2)")
demo = activation_demo(vector, ratio=gamma, group_size=group)
ui.chart(figures.activation_demo_figure(demo), key=f"{P}_chart")
n = demo.x.numel()
st.markdown(
    f"""
- **ReLU** zeroes the negative entries: it is continuous, so a small change of the input
  changes the output a little.
- **Max-pool** keeps the maximum of each group of {group} and *downsamples* the layer
  ({n} → {demo.maxpool.numel()} values); it is continuous too.
- **LWTA** keeps each group's maximum in place and zeroes the rest of the group.
- **k-WTA** keeps the **k = ⌊γ·N⌋ = ⌊{gamma:g}·{n}⌋ = {demo.k}** largest values of the
  *whole* layer (winners keep their sign), ties going to the lower index.
  When the k-th and (k+1)-th largest values swap, one unit is switched off and another
  switched on at full value: the output **jumps**. LWTA is discontinuous in the same way,
  within each group.
"""
)
with st.expander("Values"):
    st.dataframe(
        {
            "input": demo.x.tolist(),
            "ReLU": demo.relu.tolist(),
            "LWTA": demo.lwta.tolist(),
            "k-WTA": demo.kwta.tolist(),
        },
        key=f"{P}_table",
    )

st.subheader("The same activations in trained networks")
cards = ui.model_cards()
trained = {act: name for act, name in fig2_models(cards).items() if name is not None}
if trained:
    rows = [summarize_card(cards[name]) for name in trained.values()]
    refs = [paper_reference(s) for s in rows]
    st.dataframe(
        {
            "activation": [s.activation_label for s in rows],
            "model": [s.name for s in rows],
            "clean": [ui.pct(s.clean) for s in rows],
            "PGD-40": [ui.pct(s.robust.get("pgd")) for s in rows],
            "A_rob": [ui.pct(s.a_rob) for s in rows],
            "paper: clean": [ui.pct(p.clean) if p else "—" for p in refs],
            "paper: A_rob": [ui.pct(p.a_rob) if p else "—" for p in refs],
        },
        hide_index=True,
        key=f"{P}_trained",
    )
    missing = [label for act, label in ACT_LABELS.items() if act not in trained]
    st.caption(
        "Naturally trained ResNet-18s of the model zoo (our numbers: the cards' `kwta evaluate` "
        "at ε = 0.031, A_rob = the worst of the paper's four attacks; the paper's: Table 1, "
        "LWTA from Table 2, width 64). "
        + (f"No naturally trained {', '.join(missing)} model in the zoo. " if missing else "")
        + "The **Model zoo** page has every model and attack."
    )

st.subheader("Where to go next")
st.markdown(
    """
| page | paper | what you can do |
|---|---|---|
| **Live attack** | Fig. 3a/b | PGD on a ReLU and a k-WTA net side by side; watch the logits |
| **Loss landscape** | Fig. 5, 7 | the loss around one image: smooth for ReLU, spiky for k-WTA |
| **1-D toy fit** | Fig. 1 | fit a k-WTA and a ReLU MLP to a few points; see the jumps |
| **Activation patterns** | Sec. 3, Thm. 1 | which units win; how many change as ε grows, per γ |
| **Model zoo** | Table 1/2 | every pretrained model: our accuracy next to the paper's |
"""
)
ui.sync_url(KEYS)
