NAME = "my manager"
