export const handler = (event) => {
  return event
};
const broken = {;
