#!/usr/bin/node
'use strict';
// An asynchronous workq handler: several tasks at once on one event loop.
// The payload is a number of milliseconds to wait; the result says when.
// handlers = ( { type = "nap"; kind = "process"; max_in_flight = 16;
//                argv = [ "/usr/bin/node", "/srv/app/example_async.js" ]; } );
const workq = require('./workq_handler');

workq.run(async (task) => {
  const ms = parseInt(task.text || '0', 10);
  const start = Date.now();
  task.progress(50, 'napping'); // `workq status` shows it
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { slept_ms: ms, start, end: Date.now(), traceparent: task.headers.traceparent || null };
});
