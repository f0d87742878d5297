"""The fab tasks: parse arguments, call fleet, print. One module per task."""
