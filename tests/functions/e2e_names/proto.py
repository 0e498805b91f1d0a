NAME = "user proto"
