exports.handler = (event) => {
  const x = ;
  return x;
};
