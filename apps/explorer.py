"""panel serve apps/explorer.py: port-Hamiltonian training, live in the browser.

Limits per session (see the README): ``--args --max-parameters N --max-samples N
--max-resolution N --memory-mb N --max-sessions N``, or the same as environment
variables ``PHVIZ_MAX_PARAMETERS`` and so on.
"""

import sys

import panel as pn

from phviz.budget import Budget
from phviz.views import Explorer
from phviz.views.serving import full_page, quiet_closed_connections, servable, session_gate

pn.extension(notifications=False)
quiet_closed_connections()

budget = Budget.from_settings(sys.argv[1:])
title = "phviz · port-Hamiltonian training"
if session_gate(budget.max_sessions).admit(pn.state.on_session_destroyed):
    explorer = Explorer(budget=budget)
    # One root per template area: each root added to a Bokeh document walks every
    # model already in it, so forty sidebar roots cost seconds per page.
    sidebar = pn.Column(*explorer.sidebar(), sizing_mode="stretch_width")
    page = pn.template.BootstrapTemplate(
        title=title,
        sidebar=[sidebar],
        main=[explorer],
        sidebar_width=340,
        header_background="#1f4e79",
        # The spinner would turn at every update; and Panel sets every page's spinner
        # on every callback of every session, which grows with the square of the tabs.
        busy_indicator=None,
    )
    servable(page)
else:
    pn.template.BootstrapTemplate(
        title=title, main=[full_page(budget.max_sessions)], header_background="#1f4e79"
    ).servable()
