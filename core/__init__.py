"""The shared core every app may import: the domain error root, the signals domain code emits
for telemetry, and the registry where apps offer their business gauges. It imports no project
app, so importing it can never close a cycle."""
