NAME = "my proto"
