"""Swap: off now, and off after a reboot (kubelet keeps failSwapOn: true).

- `swapoff -a` runs only while some swap is active. Inside a container the swap in
  /proc/swaps is the container host's: it is reported (kubelet will not start while it is
  on), not turned off from inside.
- Active swap lines in /etc/fstab are commented out, never deleted.
- Every swap unit systemd knows (the fstab generator's, e.g. Ubuntu's /swap.img ->
  swap.img.swap, or a GPT auto-discovered partition) is masked, and so is swap.target,
  through which boot pulls swap in: a swap line put back in fstab, or a swap partition
  that is not in fstab at all, still stays off.
"""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, deploy, operation
from pyinfra.operations import files

from deploys.system.facts import FSTAB_SWAP_LINE


def units_to_mask(swap_units: dict[str, str]) -> list[str]:
    """swap.target and every swap unit, by the state list-unit-files reports, not masked."""
    units = {"swap.target": "", **swap_units}
    return sorted(unit for unit, state in units.items() if state != "masked")


def own_swaps(current: dict) -> list[str]:
    """The active swap this node can turn off: none inside a container (the host's)."""
    return current["swaps"] if current["container"] == "none" else []


@operation()
def swap_off(current: dict):
    """Swap off now and for good, given the node's SystemState."""
    units = units_to_mask(current["swap_units"])
    if not (own_swaps(current) or current["fstab_swap"] or units):
        host.noop("no swap is active, in /etc/fstab or unmasked")
        return
    if own_swaps(current):
        yield "swapoff -a"
    if current["fstab_swap"]:
        yield from files.replace._inner(
            path="/etc/fstab",
            text=f"^({FSTAB_SWAP_LINE})$",
            replace=r"# \1",
            extended_regex=True,
        )
    if units:
        yield StringCommand("systemctl", "mask", *(QuoteString(u) for u in units))


@deploy("Swap off")
def disable_swap(current: dict):
    if current["swaps"] and not own_swaps(current):
        host.log(
            f"swap: {', '.join(current['swaps'])} is the container host's swap "
            f"({current['container']}); kubelet will not start until the host turns it off",
            log_func=logger.warning,
        )
    swap_off(name="swap: turn off swap for good", current=current)
