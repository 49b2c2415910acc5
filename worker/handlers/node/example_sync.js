#!/usr/bin/node
'use strict';
// A synchronous workq handler: upper-cases text payloads.
// handlers = ( { type = "upper"; kind = "process";
//                argv = [ "/usr/bin/node", "/srv/app/example_sync.js" ]; } );
const workq = require('./workq_handler');

workq.run((task) => {
  if (task.text === 'fail') throw new workq.Fail('told to fail');
  if (task.text === 'retry' && task.attempt < 2) throw new workq.Retry(`try again, attempt ${task.attempt}`);
  if (task.text === 'crash') process.exit(3);     // dies mid-task
  console.log(`upper: task ${task.taskId} attempt ${task.attempt}`);
  return task.text.toUpperCase();
});
