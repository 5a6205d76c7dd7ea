"""``certkit vision ...``: the commands of every vision topic, mounted in one group.

- ``certify``, ``evaluate``, ``plot``: randomized smoothing (:mod:`certkit.vision.smoothing.cli`);
- ``conformal``: conformal prediction sets (:mod:`certkit.vision.conformal.cli`);
- ``attack ...``: attacks, corruptions, robust-accuracy plots (:mod:`certkit.vision.attacks.cli`);
- ``verified ...``: certified training (:mod:`certkit.vision.training.cli`).
"""

from __future__ import annotations

import typer

from certkit.vision.conformal.cli import app as _conformal_app
from certkit.vision.smoothing.cli import app as _smoothing_app
from certkit.vision.training.cli import app as _verified_app

app = typer.Typer(name="vision", help="Randomized smoothing, sequential certification, robust conformal "
                  "prediction for image classifiers.", no_args_is_help=True)

for _sub in (_smoothing_app, _conformal_app):
    app.registered_commands.extend(_sub.registered_commands)
app.add_typer(_verified_app, name="verified")

try:  # the attacks engineer's commands: certkit vision attack ...
    from certkit.vision.attacks.cli import app as attacks_app

    app.add_typer(attacks_app, name="attack")
except ImportError:  # pragma: no cover - depends on what is installed
    pass
