"""The edge side: a Greengrass component of a trained model and the agent that serves it over gRPC.

Only `agent` and the generated `edge_agent_pb2*` modules run on a device; `component` builds the
package in the cloud (the packaging job).
"""
