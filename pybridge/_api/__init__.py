"""The public driver API (layer 3): Driver, Port and Monitor, written against PortBackend."""
