NAME = "user runtimes"
