"""The project's own pyinfra facts, for what pyinfra's facts do not cover."""
