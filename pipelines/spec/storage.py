"""Where a pipeline's Delta tables live: the storage root, the control plane's root, and
deltalake's storage options (shared and per region, ``${VAR}`` values read at run time)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipelines.spec.base import Region, _Model
from pipelines.spec.resolve import expand_env


def _resolve_options(options: dict[str, str], field: str) -> dict[str, str]:
    """A region's own options with ``${VAR}`` values read from the environment."""
    return StorageSpec(options=options).resolved_options(field)


class RegionStorageSpec(_Model):
    """One region's own storage settings (merged over ``storage.options``)."""

    options: dict[str, str] = Field(
        default_factory=dict, description="deltalake storage options of this region's tables; '${VAR}' values",
    )


class StorageSpec(_Model):
    """Where the pipeline's Delta tables live."""

    root: str = Field("./lockstep-data", description="local folder or s3:// abfss:// gs:// URI")
    options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options; a value '${VAR}' is read from the environment "
        "at run time, so no credential is ever written in a spec",
    )

    def resolved_options(self, field: str = "storage.options") -> dict[str, str]:
        """The options with ``${VAR}`` / ``${VAR:-default}`` read from the environment, at
        run time (never stored in the spec or its hash); an unset variable is a SpecError."""
        return {key: expand_env(value, f"{field}.{key}") for key, value in self.options.items()}

    control_root: str | None = Field(
        None,
        description="where _lockstep (certifications, check results, evidence) lives; default: "
        "the root. Required when the root contains {region}: the control plane is not a region",
    )
    regions: dict[Region, RegionStorageSpec] = Field(
        default_factory=dict, description="per-region storage options (each region its own bucket and credentials)",
    )

    @model_validator(mode="after")
    def _control_plane(self) -> StorageSpec:
        if "{region}" in self.root and self.control_root is None:
            raise ValueError("root contains {region}: set storage.control_root for _lockstep")
        if self.control_root is not None and "{region}" in self.control_root:
            raise ValueError("control_root must not contain {region}")
        return self

    def region_options(self, region: str) -> dict[str, str]:
        """Storage options of one region's tables: the shared options, then the region's own."""
        out = self.resolved_options()
        own = self.regions.get(region)
        if own is not None:
            out.update(_resolve_options(own.options, f"storage.regions.{region}.options"))
        return out
