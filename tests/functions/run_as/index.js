// Who am I, and what of the manager can I see? For the instance.user tests.
const fs = require("fs");

exports.handler = (event, context) => {
  let environ;
  try {
    fs.readFileSync(`/proc/${process.ppid}/environ`);
    environ = "readable";
  } catch (error) {
    environ = error.code;
  }
  return {
    uid: process.getuid(),
    gid: process.getgid(),
    groups: process.getgroups(),
    home: process.env.HOME,
    address: process.env.EDGEFN_INSTANCE_ADDRESS,
    managerEnviron: environ,
  };
};
