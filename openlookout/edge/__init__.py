"""The edge side: a Greengrass component of a trained model and the agent that serves it over gRPC.

On a device run `agent` with what it imports (`errors`, `shared_memory`, `socket_path`), `command`
and the generated `edge_agent_pb2*` modules (component.AGENT_MODULES); `component` builds the
package in the cloud (the packaging job).
"""
