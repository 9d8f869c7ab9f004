"""OS preparation: one module per concern, composed by prepare_system()."""

from pyinfra.api import deploy
from pyinfra.operations import server


@deploy("Prepare the operating system")
def prepare_system():
    server.shell(name="system: report kernel", commands=["uname -r"])
