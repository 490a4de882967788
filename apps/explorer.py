"""panel serve apps/explorer.py: port-Hamiltonian training, live in the browser."""

import panel as pn
import torch

from phviz.views import Explorer
from phviz.views.serving import quiet_closed_connections

# One torch thread for training, so the server's own thread stays responsive.
torch.set_num_threads(1)
pn.extension(notifications=False)
quiet_closed_connections()

explorer = Explorer()
pn.template.BootstrapTemplate(
    title="phviz · port-Hamiltonian training",
    sidebar=explorer.sidebar(),
    main=[explorer],
    sidebar_width=340,
    header_background="#1f4e79",
).servable()
