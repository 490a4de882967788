"""panel serve apps/explorer.py: port-Hamiltonian training, live in the browser."""

import panel as pn
import torch

from phviz.views import Explorer

# One torch thread for training, so the server's own thread stays responsive.
torch.set_num_threads(1)
pn.extension(notifications=False)

explorer = Explorer()
pn.template.BootstrapTemplate(
    title="phviz · port-Hamiltonian training",
    sidebar=explorer.sidebar(),
    main=[explorer],
    sidebar_width=340,
    header_background="#1f4e79",
).servable()
