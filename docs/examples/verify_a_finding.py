# %% [markdown]
# # Verify a finding made on a synthetic release
#
# A notebook-style script (`# %%` cells: run it in VS Code / Jupyter, or as `python verify_a_finding.py`).
# It signs in from the environment (`CLEARINGHOUSE_URL`, `CLEARINGHOUSE_TOKEN`: the export lines that
# `make demo` prints for the researcher), downloads a published release (its SHA-256 is checked against the
# datasheet), finds a hypothesis on the synthetic rows with lifelines (a Cox hazard ratio), previews it for free
# and verifies it on the real patients with an ε-DP answer, then prints the answer in words and saves a plot.
#
# `CLEARINGHOUSE_RELEASE` picks the release (default: the newest published one), `CLEARINGHOUSE_EPSILON` the
# ε to spend (default: the preview's suggestion, within what is left), `CLEARINGHOUSE_PLOT` the PNG's path.

# %%
import os
from decimal import Decimal

import matplotlib

matplotlib.use("Agg")  # no display needed; the figure is saved as a PNG

from clearinghouse_client import Client, ClearinghouseError  # noqa: E402
from lifelines import CoxPHFitter  # noqa: E402

ch = Client()  # CLEARINGHOUSE_URL and CLEARINGHOUSE_TOKEN from the environment
release_id = int(os.environ.get("CLEARINGHOUSE_RELEASE") or max(r.id for r in ch.releases()))
release = ch.release(release_id)
print(f"release {release.id} of {release.dataset}: {release.rows} synthetic rows")

# %% Download the synthetic rows (Parquet, SHA-256 checked against the datasheet)
frame = ch.download(release)
print(frame.head())

# %% Find a hypothesis on the synthetic rows: does hormonal therapy lower the hazard of recurrence?
schema = ch.dataset(release.dataset).schema
duration, event = schema["survival"]["duration"], schema["survival"]["event"]
cox = CoxPHFitter().fit(frame.assign(horTh=(frame["horTh"] == "yes").astype(int))[["horTh", duration, event]],
                        duration_col=duration, event_col=event)
synthetic_hr = float(cox.hazard_ratios_["horTh"])
direction = "less" if synthetic_hr < 1 else "greater"
print(f"on the synthetic rows: HR of horTh=yes = {synthetic_hr:.3f} -> claim: HR {direction} than 1")

hypothesis = dict(kind="hazard_ratio", params={"exposure": {"column": "horTh", "value": "yes"}}, where=(),
                  claim={"direction": direction, "value": 1})

# %% Preview it (free: simulated on the synthetic release, nothing charged)
budget = {b.dataset: b for b in ch.budget()}[release.dataset]
asked = Decimal(os.environ.get("CLEARINGHOUSE_EPSILON") or "0.5")
preview = ch.preview(release, epsilon=min(asked, budget.left) if budget.left > 0 else asked, **hypothesis)
print(preview.summary())
epsilon = Decimal(os.environ["CLEARINGHOUSE_EPSILON"]) if os.environ.get("CLEARINGHOUSE_EPSILON") else (
    preview.suggested_epsilon or preview.epsilon)

# %% Verify it on the real patients (ε-DP answer, charged to the budget; asked again, it is reused at no charge)
try:
    answer = ch.verify(release, epsilon=epsilon, **hypothesis)
except ClearinghouseError as error:
    raise SystemExit(f"refused: {error.status} {error.code}: {error.message}")
print(answer.summary())

# %% The CI against the claim, saved as a PNG
ax = answer.plot()
path = os.environ.get("CLEARINGHOUSE_PLOT", "answer.png")
ax.figure.savefig(path, dpi=120, bbox_inches="tight")
print(f"plot saved to {path}")
