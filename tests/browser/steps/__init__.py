"""Walk steps of the console (issue 15): one module per area, chained by the walk test."""
