handler = "not a function"
