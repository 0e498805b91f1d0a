NAME = "user manager"
