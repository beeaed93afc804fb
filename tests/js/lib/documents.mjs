// The GraphQL documents the client scripts send, as a dashboard would.

export const TASK_EVENTS = `
  subscription TaskEvents($taskId: ID!, $after: Int) {
    taskEvents(taskId: $taskId, afterSequence: $after) { id sequence type data createdAt taskId }
  }
`;

/** The variables of a TASK_EVENTS subscription that resumes after `after`. */
export const taskEventsAfter = (taskId, after) => ({ taskId, after });
