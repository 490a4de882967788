"""panel serve apps/explorer.py: port-Hamiltonian training, live in the browser.

Limits per session (the documentation's page "Serving a class"): ``--args
--max-parameters N --max-samples N --max-resolution N --memory-mb N --max-sessions N``,
or the same as environment variables ``PHVIZ_MAX_PARAMETERS`` and so on.
"""

import sys

import panel as pn

from phviz.budget import Budget
from phviz.views import Explorer
from phviz.views.layout import page
from phviz.views.linkview import read_link
from phviz.views.refusals import tell_refused_edits
from phviz.views.serving import (
    exit_promptly,
    follow_parent,
    full_page,
    quiet_closed_connections,
    servable,
    session_gate,
)

pn.extension(notifications=False)
quiet_closed_connections()
tell_refused_edits()  # a refused value is told in its tab's banner
exit_promptly()
follow_parent()  # under --num-procs: stop with the parent

budget = Budget.from_settings(sys.argv[1:])
if session_gate(budget.max_sessions).admit(pn.state.on_session_destroyed):
    explorer = Explorer(budget=budget, link=read_link())
    servable(page([explorer], explorer.sidebar()))
else:
    page([full_page(budget.max_sessions)]).servable()
