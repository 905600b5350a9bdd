"""Settings: the registry of options (A1111's OptionInfo shape), our built-in definitions, and the frozen
snapshot a job runs with. The live, persisted store (config.json, callbacks) is sdui.app.options."""

from sdui.settings.registry import OptionInfo, Registry, Section, options_section
from sdui.settings.snapshot import Settings

__all__ = ["OptionInfo", "Registry", "Section", "Settings", "options_section"]
