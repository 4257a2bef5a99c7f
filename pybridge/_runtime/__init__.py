"""The runtime (layer 4): the worker process that serves ports for a node.

worker: the loop and the ctl socket; channel: a port's transport; conn: a port (its state,
the PortBackend its handle calls, its callbacks); handlers: the frames from the driver;
aio, jobs, entry: coroutines, driver_async and calls from other threads; loader, poller,
logs: what the loop stands on.
"""
