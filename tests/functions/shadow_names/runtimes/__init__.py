NAME = "my runtimes"
