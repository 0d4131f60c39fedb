"""The `machine-config` block: a machine's config YAML kept on the Prefect server, where it can be
edited in the UI and named by a deployment (`config-block:` in machines.yml) instead of a file path
that every worker host would need."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from prefect.blocks.core import Block
from pydantic import Field, model_validator

if TYPE_CHECKING:
    from linac_qa.config import Settings

BLOCK_TYPE_SLUG = "machine-config"


class MachineConfig(Block):
    """A linac's QA config, as the YAML of `watcher_config.yml` (only what differs from the defaults)."""

    _block_type_name: ClassVar[str | None] = "Machine Config"
    _block_type_slug: ClassVar[str | None] = BLOCK_TYPE_SLUG
    _description: ClassVar[str | None] = (
        "A linac's QA config (the YAML of watcher_config.yml: only what differs from the defaults), "
        "named by a linac-qa-flows deployment's config_block parameter."
    )

    yaml: str = Field(
        default="",
        description="The config as YAML, e.g. 'general:\\n  unit: TrueBeam1'. Empty: all defaults.",
    )
    description: str | None = Field(default=None, description="Which machine, who maintains it.")

    @model_validator(mode="after")
    def _valid_config(self) -> MachineConfig:
        # Checked when the block is built, so a mistake never reaches the server from our tools.
        # The UI saves without this check: runs check again, naming the block (settings_of).
        self.settings("machine-config block")
        return self

    def settings(self, source: str) -> Settings:
        from linac_qa.config import load_settings

        return load_settings(text=self.yaml, source=source)

    @classmethod
    def settings_of(cls, name: str) -> Settings:
        """The settings in the block saved under `name`; mistakes name the block, line and key."""
        from linac_qa.config import ConfigError

        source = f"block '{name}'"
        try:
            # Unvalidated, so that a mistake made in the UI is reported by load_settings below
            # with the block's name, not as a pydantic validation error.
            block = cast(MachineConfig, cls.load(name, validate=False))  # sync: not awaited
        except ValueError as exc:
            if "Unable to find block document" not in str(exc):
                raise
            raise ConfigError(
                source,
                "",
                "no machine-config block of that name on the Prefect server; save one with "
                f"python -m blocks.setup machine-config --name {name} --file CONFIG.yml",
            ) from None
        return block.settings(source)


def run_settings(config: str | None, config_block: str | None) -> Settings:
    """The config of one run: a YAML file, a machine-config block on the server, or the defaults."""
    from linac_qa.config import ConfigError, load_settings

    if config_block:
        if config:
            raise ConfigError(
                f"block '{config_block}'", "", f"give a config file or a config block, not both ({config})"
            )
        return MachineConfig.settings_of(config_block)
    return load_settings(config)
