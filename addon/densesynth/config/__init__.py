"""Configuration: embedded defaults that are also the schema, plus validation."""
from .loader import ConfigError, config_hash, default_config, load_config, section_defaults

__all__ = ["ConfigError", "config_hash", "default_config", "load_config", "section_defaults"]
