-- A replica's heartbeat, and its deadline timer: renews its lease and ends what time has ended.
sweep()
return reply()
